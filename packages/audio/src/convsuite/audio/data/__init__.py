"""Audio data: WAV files (soundfile), the AEC-Challenge synthetic layout, and the call simulator."""
