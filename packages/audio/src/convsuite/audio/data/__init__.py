"""Audio data: WAV files (soundfile), the AEC-Challenge synthetic layout, and the call simulator."""

from convsuite.audio.data.challenge import ChallengeCall, read_challenge_set, write_challenge_set
from convsuite.audio.data.simulate import SCENARIOS, Call, exponential_rir, room_rir, simulate_call
from convsuite.audio.data.speech import Talker, random_talker, synthesize_speech
from convsuite.audio.data.wav import SAMPLE_RATE, check_pair, read_wav, resample, write_wav

__all__ = [
    "SAMPLE_RATE",
    "SCENARIOS",
    "Call",
    "ChallengeCall",
    "Talker",
    "check_pair",
    "exponential_rir",
    "random_talker",
    "read_challenge_set",
    "read_wav",
    "resample",
    "room_rir",
    "simulate_call",
    "synthesize_speech",
    "write_challenge_set",
    "write_wav",
]
