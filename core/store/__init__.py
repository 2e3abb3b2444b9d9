"""Persistence: SQLAlchemy tables, the database engine with its pragmas, Alembic migrations, and
the rows a private (backtest) store holds back.

May import: ``errors`` only (migrations also read the paper venue's tables).
"""
