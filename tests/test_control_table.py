"""Control tables: the registers each model has, by name."""

import pytest

from robot.dynamixel.control_table import MODELS, baud_code, get_model


def test_the_four_models_and_their_numbers():
    assert {m.name: m.model_number for m in MODELS.values()} == {
        "XM430-W350": 1020, "XM540-W270": 1120, "XL430-W250": 1060, "XL330-M288": 1200}


@pytest.mark.parametrize("name", list(MODELS))
def test_cycle_registers_are_where_the_sync_read_expects_them(name):
    model = get_model(name)
    effort = model.register(model.effort_register)
    assert (effort.address, effort.size) == (126, 2)
    assert (model.register("Present Velocity").address, model.register("Present Position").address) == (128, 132)
    assert model.register("Goal Position").address == 116
    assert model.register("Hardware Error Status").access == "R"
    assert model.register("Operating Mode").eeprom and not model.register("Torque Enable").eeprom


def test_xl430_has_load_not_current_and_says_so():
    xl430 = get_model("xl430-w250")
    assert xl430.effort_register == "Present Load"
    assert 5 not in xl430.operating_modes  # no current-based position
    with pytest.raises(KeyError, match="XL430-W250 has no register 'Current Limit'"):
        xl430.register("Current Limit")


def test_unknown_model_and_baud_are_refused():
    with pytest.raises(KeyError, match="unknown Dynamixel model 'MX-28'"):
        get_model("MX-28")
    assert baud_code(4_000_000) == 6
    with pytest.raises(ValueError, match="not a Dynamixel X-series baud rate"):
        baud_code(250_000)
