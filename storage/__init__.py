"""Persistence: async engine, SQLAlchemy 2.0 tables, repository functions, migrations."""
