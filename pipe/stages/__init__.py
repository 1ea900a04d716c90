"""The stages, in pipeline order (`PIPELINE`). One module per family: media (ingest, clip), denoise (optional vocal
denoising), speech (transcribe, diarize), annotate (caption), dialogue (dialogues, semantic filter, E-CoT)."""

from emoomni.pipe.stages.annotate import CaptionStage
from emoomni.pipe.stages.denoise import DenoiseStage
from emoomni.pipe.stages.dialogue import DialogueStage, EcotStage, FilterStage
from emoomni.pipe.stages.media import ClipStage, IngestStage
from emoomni.pipe.stages.speech import DiarizeStage, TranscribeStage

PIPELINE = (IngestStage, DenoiseStage, TranscribeStage, DiarizeStage, ClipStage, CaptionStage, DialogueStage,
            FilterStage, EcotStage)
