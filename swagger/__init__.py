"""The OpenAPI contract. Installed as the package `app.spec`, so a wheel carries it."""
