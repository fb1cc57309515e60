"""What the modules that edit one configuration file (sysctl, pam_limits, pamd, cron, mount...) share."""
from __future__ import annotations

import voluptuous as vol

from engine.recipe.schema import file_mode
from modules.tasks._remote import maybe, text

# Ansible's common file arguments these modules take; only the three their users set.
FILE_ATTRS = {
    vol.Optional("mode", default=None): maybe(file_mode),
    vol.Optional("owner", default=None): maybe(text),
    vol.Optional("group", default=None): maybe(text),
}
