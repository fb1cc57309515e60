"""What AWS accepts, as schema pieces the amazon platform and the ami export both check against."""
from __future__ import annotations

import voluptuous as vol

REGION = vol.Match(r"^[a-z]{2}(-[a-z]+)+-\d$", msg="a region like eu-west-1")
VOLUME_TYPES = ("gp3", "gp2", "io1", "io2", "st1", "sc1", "standard")
AMI_NAME = vol.Match(r"^[A-Za-z0-9()\[\] ./'@_-]{3,128}$",
                     msg="an AMI name is 3 to 128 letters, digits, spaces and ( ) [ ] . / - ' @ _")
