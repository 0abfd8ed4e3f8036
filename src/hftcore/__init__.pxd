# cython: language_level=3
# hftcore's C-level API lives in its submodules' .pxd files:
#   hftcore.types, hftcore.decimal, hftcore.binance, hftcore.book,
#   hftcore.sync, hftcore.volatility, hftcore.quoting
