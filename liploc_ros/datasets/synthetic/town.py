"""A town: its streets, its static objects, its parking slots and its route."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from liploc_ros.datasets.synthetic.config import TownConfig
from liploc_ros.datasets.synthetic.layout import build_static
from liploc_ros.datasets.synthetic.parking import CarSlots, make_car_slots, parked_cars
from liploc_ros.datasets.synthetic.primitives import Primitives
from liploc_ros.datasets.synthetic.roads import RoadNetwork, make_road_network
from liploc_ros.datasets.synthetic.route import Path, make_route


@dataclass(frozen=True, eq=False)
class Town:
    """Everything of a town that traversals share (treat its arrays as read-only: towns are
    cached and shared between drives)."""

    config: TownConfig
    roads: RoadNetwork
    static: Primitives
    slots: CarSlots

    @property
    def seed(self) -> int:
        return self.config.seed

    def parked_cars(self, traversal: int = 0, change: float = 0.0) -> Primitives:
        """Cars parked at the kerbs during ``traversal`` (0: the town's own)."""
        return parked_cars(self.slots, self.seed, traversal, change, self.config.parked_cars)

    def scene(self, traversal: int = 0, change: float = 0.0) -> Primitives:
        """All objects seen during ``traversal``: static ones and its parked cars."""
        return Primitives.concat([self.static, self.parked_cars(traversal, change)])

    def route(self, length: float) -> Path:
        """The town's route, at least ``length`` metres long (longer ones extend shorter)."""
        return make_route(self.roads, self.seed, length)


@lru_cache(maxsize=8)
def make_town(cfg: TownConfig | None = None) -> Town:
    """Generate (or fetch from a small cache) the town of ``cfg``."""
    cfg = cfg or TownConfig()
    roads = make_road_network(cfg)
    return Town(
        config=cfg, roads=roads, static=build_static(roads, cfg), slots=make_car_slots(roads)
    )
