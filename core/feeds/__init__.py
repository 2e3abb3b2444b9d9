"""Market feeds: replay of recorded candles, and the feed contract."""
