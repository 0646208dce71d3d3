"""The protocol package, vendored into the built extension, or the development tree's ``shared``.

In the built zip ``shared/`` is copied to ``anim4d/_vendor/shared/`` and imported relatively, so it
can never clash with another add-on's modules. In the repository it is the top-level package.
"""

try:
    from .._vendor.shared import (  # type: ignore[import-not-found]
        cameras,
        errors,
        gaussians,
        gsply,
        manifest,
        meshseq,
        params,
        pc2,
        protocol,
        resample,
        results,
        stream,
    )
except ImportError:  # development tree and tests
    from shared import (  # type: ignore[no-redef]
        cameras,
        errors,
        gaussians,
        gsply,
        manifest,
        meshseq,
        params,
        pc2,
        protocol,
        resample,
        results,
        stream,
    )

__all__ = ["cameras", "errors", "gaussians", "gsply", "manifest", "meshseq", "params", "pc2",
           "protocol", "resample", "results", "stream"]
