"""Errors the driver raises. Each names the port and, where there is one, the motor and joint."""

from __future__ import annotations

from robot.dynamixel.protocol import describe_hardware_error, describe_status_error


class DynamixelError(RuntimeError):
    """Base for everything the Dynamixel driver raises."""


class PortError(DynamixelError):
    """The serial port could not be opened or configured."""


def _motor(port: str, motor_id: int, joint: str | None) -> str:
    return f"motor {motor_id}" + (f" ({joint})" if joint else "") + f" on {port}"


class NoResponseError(DynamixelError):
    """Nothing (or only garbage) came back within the deadline, after retries."""

    def __init__(self, port: str, motor_id: int | None, joint: str | None, what: str, attempts: int,
                 detail: str) -> None:
        self.port, self.motor_id, self.joint = port, motor_id, joint
        where = _motor(port, motor_id, joint) if motor_id is not None else f"the bus on {port}"
        super().__init__(
            f"{where}: {what} failed after {attempts} attempt(s): {detail}. "
            "Check that motor's cable and power; if it persists, power-cycle the arm."
        )


class MotorStatusError(DynamixelError):
    """The motor answered, with an error number in its status packet."""

    def __init__(self, port: str, motor_id: int, joint: str | None, what: str, error: int) -> None:
        self.port, self.motor_id, self.joint, self.error = port, motor_id, joint, error
        super().__init__(f"{_motor(port, motor_id, joint)}: {what} refused: {describe_status_error(error)}")


class HardwareError(DynamixelError):
    """Hardware Error Status is non-zero: the motor has shut its torque off."""

    def __init__(self, port: str, motor_id: int, joint: str | None, status: int) -> None:
        self.port, self.motor_id, self.joint, self.status = port, motor_id, joint, status
        problems = "; ".join(describe_hardware_error(status)) or "alert bit set, status unreadable"
        super().__init__(
            f"{_motor(port, motor_id, joint)}: hardware error (status 0x{status:02x}): {problems}. "
            "The motor has turned its torque off; once the cause is fixed, reboot the motor "
            "(power-cycle, or the driver's reboot) to clear it."
        )


class ModelMismatchError(DynamixelError):
    def __init__(self, port: str, motor_id: int, joint: str | None, expected: str, found: str) -> None:
        self.port, self.motor_id, self.joint = port, motor_id, joint
        super().__init__(
            f"{_motor(port, motor_id, joint)}: expected a {expected} but found a {found}. "
            "Check the rig file's motor models and IDs against the arm."
        )


class ShadowMismatchError(DynamixelError):
    """A shadow motor disagrees with its primary: a slipped horn, a loose gear, or a failed motor."""

    def __init__(self, port: str, joint: str, primary_id: int, shadow_id: int, primary: int, shadow: int,
                 tolerance: int) -> None:
        self.port, self.joint, self.motor_id = port, joint, shadow_id
        super().__init__(
            f"{joint} on {port}: shadow motor {shadow_id} reads {shadow} ticks but its primary "
            f"motor {primary_id} reads {primary} (difference {shadow - primary}, tolerance {tolerance}). "
            "Stop and inspect the joint: a shadow that disagrees means a slipped horn or a failing motor."
        )


class TorqueReleaseError(DynamixelError):
    """Some motors did not take a hold or torque command (turning off: they may still be torqued)."""

    def __init__(self, port: str, failures: list[tuple[int, str | None, str]], *,
                 command: str = "torque off") -> None:
        self.port = port
        self.motor_ids = [motor_id for motor_id, _, _ in failures]
        listed = "; ".join(f"motor {motor_id}" + (f" ({joint})" if joint else "") + f": {why}"
                           for motor_id, joint, why in failures)
        if command == "torque on":
            super().__init__(f"{port}: {len(failures)} motor(s) did not take torque on: {listed}")
            return
        if command == "hold":
            super().__init__(f"{port}: {len(failures)} motor(s) could not be told to hold, and may move to an "
                             f"older goal while torqued: {listed}")
            return
        super().__init__(
            f"{port}: {len(failures)} motor(s) may still be torqued: {listed}. Support the arm and switch its "
            "power off, or power-cycle it, before touching it."
        )
