"""The desk's engine, rules, adapters and store. Nothing here imports streamlit (bar core/ui.py)."""
