"""Model server: serves the registered model behind one alias (Flask app factory, gunicorn)."""
