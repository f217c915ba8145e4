"""Lightning callbacks: online evaluation monitors (kNN, linear probe, RankMe)."""

from sslkit.callbacks.online_knn import OnlineKNN
from sslkit.callbacks.online_probe import OnlineLinearProbe
from sslkit.callbacks.rankme import RankMeMonitor

__all__ = ["OnlineKNN", "OnlineLinearProbe", "RankMeMonitor"]
