"""vidgen: a frozen text-to-image diffusion model becomes a text-to-video generator through a small adapter."""

from .adapter import VideoAdapter, VideoDenoiser
from .errors import VidgenError
from .pipeline import GenerationConfig, VideoOutput, VideoPipeline
from .sampling import Mode, Start
from .video import export_video, read_video

__all__ = ["VideoAdapter", "VideoDenoiser", "VideoPipeline", "VideoOutput", "GenerationConfig", "Mode", "Start",
           "VidgenError", "export_video", "read_video"]
__version__ = "0.1.0"
