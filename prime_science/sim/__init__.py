"""Simulated worlds: the ground truth that experiments run policies against."""

from prime_science.sim.arm_world import (
    LONG_AGO,
    ArmWorld,
    active_mask,
    arm_age,
    arrival_schedule,
    make_arm_world,
    pull,
)

__all__ = [
    "LONG_AGO",
    "ArmWorld",
    "active_mask",
    "arm_age",
    "arrival_schedule",
    "make_arm_world",
    "pull",
]
