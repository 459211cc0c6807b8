"""Domain logic. Services take a session explicitly and import neither Flask nor Connexion."""
