"""The names and limits of hpm's user-facing contract, one definition each.

Every environment variable hpm reads is named here, and each size limit that more
than one module enforces. docs/running.md lists the variables for users; a test holds
that page, ``hpm --help`` and this module to the same list.
"""

# -- the lock a run installs (docs/lock-format.md)
LOCK_B64 = "HPM_LOCK_B64"
LOCK_FILE = "HPM_LOCK_FILE"
LOCK_KEY = "HPM_LOCK_KEY"
LOCK_KEY_FILE = "HPM_LOCK_KEY_FILE"
#: the signing-key variables: while either is set, the signature is checked at every start
KEY_VARS = (LOCK_KEY, LOCK_KEY_FILE)
#: removed from the environment of every program hpm runs or execs
SCRUBBED = (LOCK_B64, LOCK_KEY, LOCK_KEY_FILE)

# -- the target environment and the hand-over (docs/running.md)
VENV = "HPM_VENV"
READY_FILE = "HPM_READY_FILE"
#: the manifest entrypoint ``hpm run`` execs, the command's words its arguments
ENTRYPOINT = "HPM_ENTRYPOINT"
UV = "HPM_UV"
CONDA = "HPM_CONDA"
CACHE = "HPM_CACHE"

# -- logging
LOG = "HPM_LOG"
LOG_FORMAT = "HPM_LOG_FORMAT"
TERMINATION_LOG = "HPM_TERMINATION_LOG"

# -- what a command resolves (docs/manifest.md)
REGISTRY = "HPM_REGISTRY"
RUN_MODE = "RUN_MODE"
WITH = "HPM_WITH"
GROUPS = "HPM_GROUPS"
PROVIDERS = "HPM_PROVIDERS"
EPHEMERAL_DIR = "HPM_EPHEMERAL_DIR"

# -- hpm docker run
IMAGE = "HPM_IMAGE"
ENGINE = "HPM_ENGINE"

#: the largest lock file (``--lock``, HPM_LOCK_FILE) hpm reads
MAX_LOCK_FILE_BYTES = 8 * 1024 * 1024
