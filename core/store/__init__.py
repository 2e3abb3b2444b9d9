"""Persistence: SQLAlchemy tables, the database engine with its pragmas, Alembic migrations."""
