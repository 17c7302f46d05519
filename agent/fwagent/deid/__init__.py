"""Edge de-identification with Flywheel de-id profiles (``deid: {profile: PATH}``).

``flywheel-migration`` applies the profile, always in a recycled worker process (it changes
pydicom settings and loads private dictionaries process-wide, and its hash cache grows
without bound), to each instance as it arrives. The de-identified copy goes to
``spool/deid/`` and is recorded next to the state; the pipeline packages and maps those
copies, while routing and the opt-in/opt-out policy keep reading the original header.
Fail closed: an instance the profile cannot process parks its series as failed.

- :mod:`.profile`  loading and the site rules a profile must pass (one-line problems)
- :mod:`.worker`   what runs in the worker process
- :mod:`.uids`     UIDs made valid (hashuid can leave components with leading zeros)
- :mod:`.store`    which de-identified copy belongs to which spooled instance
- :mod:`.service`  the pool, the receiver hook and what the pipeline asks for
- :mod:`.mapping`  metadata from the de-identified header, routing from the original
"""

from .profile import ProfileError, check_profile, profile_problems

__all__ = ["ProfileError", "check_profile", "profile_problems"]
