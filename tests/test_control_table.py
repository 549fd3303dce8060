"""Control tables: the registers each model has, by name, as the ROBOTIS e-Manual gives them."""

import pytest

from robot.dynamixel.control_table import (
    INDIRECT_X330,
    MODELS,
    MODELS_BY_NUMBER,
    _x_series_registers,
    baud_code,
    get_model,
)

# e-Manual (emanual.robotis.com/docs/en/dxl/x/<model>/): Model Number(0) and the effort register at 126
E_MANUAL = {
    "XM430-W350": (1020, "Present Current", 2.69),
    "XM540-W270": (1120, "Present Current", 2.69),
    "XL430-W250": (1060, "Present Load", 0.1),
    "XL330-M288": (1200, "Present Current", 1.0),
    "XL330-M077": (1190, "Present Current", 1.0),
    "XC430-W150": (1070, "Present Load", 0.1),
    "XC430-W240": (1080, "Present Load", 0.1),
    "XC330-M181": (1230, "Present Current", 1.0),
    "XC330-M288": (1240, "Present Current", 1.0),
    "XC330-T181": (1210, "Present Current", 1.0),
    "XC330-T288": (1220, "Present Current", 1.0),
    "XM430-W210": (1030, "Present Current", 2.69),
    "XM540-W150": (1130, "Present Current", 2.69),
}

# e-Manual initial values: Current Limit (None: no such register), Velocity Limit, Position P Gain,
# Max/Min Voltage Limit, Temperature Limit
E_MANUAL_LIMITS = {
    "XL330-M077": (1750, 1620, 400, 70, 35, 70),
    "XC430-W150": (None, 460, 460, 160, 60, 80),
    "XC430-W240": (None, 306, 700, 160, 60, 80),
    "XC330-M181": (2352, 545, 1200, 70, 35, 70),
    "XC330-M288": (2352, 350, 1100, 70, 35, 70),
    "XC330-T181": (910, 510, 900, 140, 55, 70),
    "XC330-T288": (910, 320, 900, 140, 55, 70),
    "XM430-W210": (1193, 330, 800, 160, 95, 80),
    "XM540-W150": (2047, 230, 800, 160, 95, 80),
}


def test_every_model_with_its_e_manual_number_and_effort_register():
    assert {m.name: (m.model_number, m.effort_register, m.effort_unit) for m in MODELS.values()} == E_MANUAL
    assert {number: m.name for number, m in MODELS_BY_NUMBER.items()} == {v[0]: k for k, v in E_MANUAL.items()}


@pytest.mark.parametrize("name", list(MODELS))
def test_cycle_registers_are_where_the_sync_read_expects_them(name):
    model = get_model(name)
    effort = model.register(model.effort_register)
    assert (effort.address, effort.size) == (126, 2)
    assert (model.register("Present Velocity").address, model.register("Present Position").address) == (128, 132)
    assert model.register("Goal Position").address == 116
    assert model.register("Hardware Error Status").access == "R"
    assert model.register("Operating Mode").eeprom and not model.register("Torque Enable").eeprom


@pytest.mark.parametrize("name", list(E_MANUAL_LIMITS))
def test_limits_and_gains_of_the_added_models(name):
    model = get_model(name)
    current, velocity, p_gain, v_max, v_min, temperature = E_MANUAL_LIMITS[name]
    assert (model.register("Current Limit").default if model.has("Current Limit") else None) == current
    assert model.has("Goal Current") == (current is not None)
    assert [model.register(r).default for r in ("Velocity Limit", "Position P Gain", "Max Voltage Limit",
                                                "Min Voltage Limit", "Temperature Limit")] == \
        [velocity, p_gain, v_max, v_min, temperature]


@pytest.mark.parametrize("name", ["XL430-W250", "XC430-W150", "XC430-W240"])
def test_models_without_current_sensing_have_load_and_say_so(name):
    model = get_model(name)
    assert model.effort_register == "Present Load" and not model.has("Present Current")
    assert model.operating_modes == {1, 3, 4, 16}  # no current, no current-based position
    with pytest.raises(KeyError, match=f"{name} has no register 'Current Limit'"):
        model.register("Current Limit")


@pytest.mark.parametrize("name", [n for n, v in E_MANUAL.items() if v[1] == "Present Current"])
def test_current_sensing_models_offer_current_based_position(name):
    assert get_model(name).operating_modes == {0, 1, 3, 4, 5, 16}


@pytest.mark.parametrize("name", list(MODELS))
def test_indirect_blocks_follow_the_models_family(name):
    model = get_model(name)
    small = model.register("Indirect Data 1").address == 208
    assert small == ("330" in name)  # XL330/XC330: 20 entries, their data right after the addresses
    links = model.indirect_links()
    assert len(links) == (20 if small else 56)
    for data_address, address_register in links.items():
        assert address_register.default == data_address  # each Indirect Address N points at its own data
    if small:
        assert model.table_end == 228 and not model.has("Indirect Address 21")
        assert model.register("PWM Slope").address == 62
    else:
        assert (model.register("Indirect Address 28").end, model.register("Indirect Data 28").end) == (224, 252)
        assert (model.register("Indirect Address 29").address, model.register("Indirect Data 56").address) == (578, 661)
        assert not model.has("PWM Slope")


def test_a_default_for_a_register_the_layout_lacks_is_refused():
    with pytest.raises(KeyError, match="no register 'Present Current' to give a default"):
        _x_series_registers(model_number=1070, current_limit=None, velocity_limit=460, position_p_gain=460,
                            max_voltage=160, min_voltage=60, nominal_voltage=120, temperature_limit=80,
                            defaults={"Present Current": 0})
    table = _x_series_registers(model_number=1190, current_limit=1750, velocity_limit=1620, position_p_gain=400,
                                max_voltage=70, min_voltage=35, nominal_voltage=50, temperature_limit=70,
                                indirect=INDIRECT_X330, pwm_slope=140, defaults={"Shutdown": 53})
    assert (table["Shutdown"].default, table["Shutdown"].address, table["PWM Slope"].default) == (53, 63, 140)


def test_unknown_model_and_baud_are_refused():
    with pytest.raises(KeyError, match="unknown Dynamixel model 'MX-28'"):
        get_model("MX-28")
    assert get_model(" xl330-m077 ").name == "XL330-M077"
    assert baud_code(4_000_000) == 6
    with pytest.raises(ValueError, match="not a Dynamixel X-series baud rate"):
        baud_code(250_000)
