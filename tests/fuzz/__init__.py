"""Fuzz suite of the Binance decoder and the decimal parser (see README.md)."""
