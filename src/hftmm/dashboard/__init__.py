"""The Streamlit dashboard (``hftmm dashboard``): live view, performance
analytics, interactive backtesting and the data inventory.

Dashboards read, engines compute: the app draws what the live engine (the
SQLite state database, :mod:`hftmm.live.schema`), the backtester
(``BacktestResult.save`` folders) and sweeps (``results.parquet``) write, and
starts heavy work as background processes (:mod:`hftmm.dashboard.jobs`).

* :mod:`~hftmm.dashboard.analytics` -- pure numeric helpers (depth, drawdown,
  rolling Sharpe, mark-outs, realised-volatility grids).
* :mod:`~hftmm.dashboard.figures` -- pure functions data -> Plotly figure.
* :mod:`~hftmm.dashboard.sources` -- read-only readers with short TTL caches.
* :mod:`~hftmm.dashboard.jobs` -- background backtests, sweeps and verifies.
* ``app.py`` and ``views/`` (the pages) -- the thin Streamlit layer.

Only :mod:`figures` and the pages need ``plotly``/``streamlit`` (the
``dashboard`` extra).
"""
