"""python -m whisper_npu"""

from whisper_npu.app.cli import main

main()
