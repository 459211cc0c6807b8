"""Domain logic. Services take a session explicitly and import neither Connexion nor app.http."""
