"""SQL access to the compatibility adapter's own schema (read models and the translation audit)."""
