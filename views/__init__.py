"""The dashboard's pages, served by ``st.navigation`` from ``app.py`` (never by URL)."""
