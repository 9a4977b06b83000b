"""whisper-npu: Whisper transcription on AMD Ryzen AI NPUs, fast and correct on CPUs."""

__version__ = "0.1.0"
