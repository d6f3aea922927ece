"""The people pages' world: two communities whose grids have the names a roster uses
(一网格, and its micro-grids 1栋 and 2栋), staff of the first, a client signed in as them."""

import pytest

from tests.builders import sign_in


@pytest.fixture
def place(make_community):
    return make_community("阳光社区", grid="一网格", micro="1栋", micro2="2栋")


@pytest.fixture
def other_place(make_community):
    return make_community("锦华社区", grid="一网格", micro="1栋", micro2="2栋")


@pytest.fixture
def staff(place, make_staff):
    return make_staff(place, username="staff_a")


@pytest.fixture
def as_staff(client, staff, no_csrf):
    """A client signed in as staff of `place`."""
    assert sign_in(client, staff.username).status_code == 302
    return client
