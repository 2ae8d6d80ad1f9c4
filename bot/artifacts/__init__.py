"""Model artifacts: the verified registry, its on-disk format and manifest, HTTP and S3
transports."""

from bot.artifacts.compiled import (
    CompiledExportError,
    CompiledModel,
    CompiledScorer,
    NoCompiledForm,
    export_compiled,
)
from bot.artifacts.format import (
    ARTIFACT_FILES,
    CHAMPION_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    ArtifactIntegrityError,
    make_manifest,
    read_manifest,
)
from bot.artifacts.http import FetchResult, PresignedUrls, RemoteOptions, describe, fetch_many
from bot.artifacts.meta import meta_of, pickle_pipeline
from bot.artifacts.registry import ArtifactRegistry, registry_from_settings
from bot.artifacts.signing import (
    SignatureError,
    Signer,
    Verifier,
    generate_keypair,
    legacy_hmac_signature,
    public_text,
)
from bot.artifacts.versions import VerificationResult, VersionInfo

__all__ = [
    "ARTIFACT_FILES",
    "CHAMPION_FILE",
    "MANIFEST_FILE",
    "MODEL_FILE",
    "ArtifactIntegrityError",
    "ArtifactRegistry",
    "CompiledExportError",
    "CompiledModel",
    "CompiledScorer",
    "FetchResult",
    "NoCompiledForm",
    "PresignedUrls",
    "RemoteOptions",
    "SignatureError",
    "Signer",
    "VerificationResult",
    "Verifier",
    "VersionInfo",
    "describe",
    "export_compiled",
    "fetch_many",
    "generate_keypair",
    "legacy_hmac_signature",
    "make_manifest",
    "meta_of",
    "pickle_pipeline",
    "public_text",
    "read_manifest",
    "registry_from_settings",
]
