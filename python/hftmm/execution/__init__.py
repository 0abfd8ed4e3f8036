"""Order execution layer."""
from hftmm.execution.orders import *  # noqa: F401,F403
