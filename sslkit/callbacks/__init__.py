"""Lightning callbacks: online evaluation monitors (kNN, linear probe, RankMe), data health, key logs,
device-side augmentation."""

from sslkit.callbacks.data_health import DataHealth
from sslkit.callbacks.device_aug import DeviceAugmentation
from sslkit.callbacks.online_knn import OnlineKNN
from sslkit.callbacks.online_probe import OnlineLinearProbe
from sslkit.callbacks.rankme import RankMeMonitor
from sslkit.callbacks.sample_log import SampleKeyLog

__all__ = ["DataHealth", "DeviceAugmentation", "OnlineKNN", "OnlineLinearProbe", "RankMeMonitor", "SampleKeyLog"]
