"""Per-task moving moments of outcome scores, the state EMA-GRPO carries across training steps."""

import math
import threading

import numpy as np


class TaskMoments:
    """Exponential moving averages m1 ~ E[x] and m2 ~ E[x^2] of outcome scores, one pair per task key.

    The state is small (two floats per task) and serialisable with :meth:`state_dict`, so that it is
    saved with verl's checkpoints and a resumed run continues exactly where it stopped.
    """

    def __init__(self):
        self._moments: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def update(self, task_keys: list[str], batch_m1: np.ndarray, batch_m2: np.ndarray, decay: float) -> None:
        """Fold one step's per-task batch moments in: the first sighting of a key sets its moments,
        later ones decay the old moments by ``decay``."""
        with self._lock:
            for key, b1, b2 in zip(task_keys, batch_m1.tolist(), batch_m2.tolist(), strict=True):
                if key in self._moments:
                    m1, m2 = self._moments[key]
                    self._moments[key] = (decay * m1 + (1.0 - decay) * b1, decay * m2 + (1.0 - decay) * b2)
                else:
                    self._moments[key] = (b1, b2)

    def mean(self, key: str) -> float:
        return self._moments[key][0]

    def std(self, key: str, min_std: float) -> float:
        """sqrt(max(Var, min_std^2)) with Var = m2 - m1^2 clipped at 0 (rounding can make it negative)."""
        m1, m2 = self._moments[key]
        return math.sqrt(max(max(m2 - m1 * m1, 0.0), min_std * min_std))

    def keys(self) -> list[str]:
        return list(self._moments)

    def state_dict(self) -> dict[str, list[float]]:
        with self._lock:
            return {key: [m1, m2] for key, (m1, m2) in self._moments.items()}

    def load_state_dict(self, state: dict[str, list[float]]) -> None:
        with self._lock:
            self._moments = {str(key): (float(m1), float(m2)) for key, (m1, m2) in state.items()}

    def reset(self) -> None:
        with self._lock:
            self._moments.clear()
