"""Transcript writers: txt, srt, vtt, tsv, json, from the result's JSON form, written atomically."""

from whisper_npu.writers.formats import *  # noqa: F403
