"""folai: synchronized Foley sound for silent video.

Two stages:
  1. timing    video -> RMS envelope (:class:`folai.envelope.Envelope`), editable by the user;
  2. synthesis envelope + what it should sound like -> 44.1 kHz stereo audio.
"""

__version__ = "0.1.0"
