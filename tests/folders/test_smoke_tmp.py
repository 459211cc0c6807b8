from tests.helpers import upload, assert_problem, run_jobs

def test_smoke(client, alice, app):
    h = alice.headers
    r = client.post("/api/v1/folders", json={"name": "photos"}, headers=h)
    assert r.status_code == 201, r.text
    photos = r.json()
    r = client.post("/api/v1/folders", json={"name": "2024", "parent_id": photos["id"]}, headers=h)
    assert r.status_code == 201, r.text
    y = r.json()
    r = client.get(f"/api/v1/folders/{y['id']}", headers=h)
    assert r.status_code == 200, r.text
    print(r.json())
    r = upload(client, alice, b"abc", "a.txt", relative_path="photos/2025/a.txt")
    assert r.status_code == 202, r.text
    print(r.json())
    r = client.get("/api/v1/entries", headers=h)
    print(r.status_code, r.text)
    r = client.get(f"/api/v1/entries?folder_id={photos['id']}", headers=h)
    print(r.status_code, r.text)
    r = client.patch(f"/api/v1/folders/{photos['id']}", json={"parent_id": y["id"]}, headers=h)
    print(r.status_code, r.text)
    r = client.get(f"/api/v1/files?folder_id=root", headers=h)
    print(r.status_code, r.text)
    r = client.delete(f"/api/v1/folders/{photos['id']}", headers=h)
    print(r.status_code, r.text)
    r = client.get("/api/v1/users/me", headers=h)
    print(r.status_code, r.text)
