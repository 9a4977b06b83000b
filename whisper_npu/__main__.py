"""python -m whisper_npu"""

import sys

try:  # Ctrl-C while the command line's modules load is the same one line as later on
    from whisper_npu.app.cli import main
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)

main()
