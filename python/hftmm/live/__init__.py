"""Live and paper trading: gateways, the engine, its state store."""
