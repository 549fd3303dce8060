"""A rig file's refusal, checked the same way everywhere: the error names the file, the field and the problem."""

import pytest

from robot.rig import RigFileError, load_rig


def rig_refused(path, where, *fragments):
    with pytest.raises(RigFileError) as info:
        load_rig(path)
    assert str(path) in str(info.value)
    assert info.value.where == where
    for fragment in fragments:
        assert fragment in info.value.problem, info.value.problem
    return info.value
