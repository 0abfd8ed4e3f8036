"""Operations: alerts (:mod:`hftmm.ops.alerts`) and Prometheus metrics (:mod:`hftmm.ops.metrics`)."""
