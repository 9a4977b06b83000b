"""python -m whisper_npu"""

from whisper_npu.cli import main

main()
