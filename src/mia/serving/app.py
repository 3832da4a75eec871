"""``mia serve``: a search page and a JSON API over a gallery index (FastAPI).

Routes:
    GET  /                      the search page (self-contained HTML, no CDN)
    GET  /api/search?q=&top=    ranked, explained results (same JSON as ``mia search``)
    POST /api/search            {"query": "...", "top": 10}
    GET  /api/health            {"status": "ok", "gallery": N}
    GET  /image/{i}             the i-th gallery image
    GET  /gallery/{path}        a gallery image by its path in the index
    GET  /docs, /openapi.json   the OpenAPI description

Only gallery images are ever served: a path is looked up in the index's own list and
must resolve inside the image root (so ``..``, absolute paths, encoded traversal and
symlinks out of the gallery all get 404). Bad requests get 4xx with a message; an
unexpected error gets a plain 500 message, never a stack trace.
"""

import logging
import threading
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from mia.retrieval.index import GalleryIndex
from mia.retrieval.search import QueryError, Searcher
from mia.training.run import load_trained

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 2000
MAX_TOP = 100


class SearchRequest(BaseModel):
    query: str = Field(..., max_length=MAX_QUERY_CHARS,
                       description="the description, e.g. 'a woman in a red t-shirt'")
    top: int = Field(10, ge=1, le=MAX_TOP, description="number of results")


def create_app(index_path: str | Path, run: str | Path | None = None,
               candidates: int | None = None, backend: str = "torch") -> FastAPI:
    index = GalleryIndex.open(index_path)
    model = index.manifest["model"]
    trained = load_trained(run or model["run"], None if run else model["checkpoint"])
    searcher = Searcher(index, trained, candidates=candidates, backend=backend)
    root = index.image_root.resolve()
    by_path = {p: i for i, p in enumerate(index.images)}
    lock = threading.Lock()  # one search at a time: each already uses every core

    app = FastAPI(title="MIA person search",
                  description="Describe a pedestrian in words; get the gallery images of that "
                  "person, ranked by MIA (Niu et al., TIP 2020), with explanations.",
                  version="1")

    def run_search(query: str, top: int) -> dict:
        try:
            with lock:
                return searcher.search(query, top_k=top)
        except QueryError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):  # no stack traces to clients
        log.exception("error while serving %s", request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return resources.files("mia.serving").joinpath("page.html").read_text("utf-8")

    @app.get("/api/health")
    def health() -> dict:
        return {"status": "ok", "gallery": len(index)}

    @app.get("/api/search")
    def search_get(q: str = Query(..., max_length=MAX_QUERY_CHARS, description="description"),
                   top: int = Query(10, ge=1, le=MAX_TOP)) -> dict:
        return run_search(q, top)

    @app.post("/api/search")
    def search_post(body: SearchRequest) -> dict:
        return run_search(body.query, body.top)

    def gallery_file(i: int) -> FileResponse:
        path = (root / index.images[i]).resolve()
        if not path.is_relative_to(root) or not path.is_file():  # symlinks out, deleted files
            raise HTTPException(status_code=404, detail="not a gallery image")
        return FileResponse(path)

    @app.get("/image/{i}")
    def image(i: int) -> FileResponse:
        if not 0 <= i < len(index):
            raise HTTPException(status_code=404, detail="not a gallery image")
        return gallery_file(i)

    @app.get("/gallery/{path:path}")
    def gallery(path: str) -> FileResponse:
        if path not in by_path:
            raise HTTPException(status_code=404, detail="not a gallery image")
        return gallery_file(by_path[path])

    return app


def serve(index_path: str | Path, host: str = "127.0.0.1", port: int = 8000, **kwargs) -> None:
    import uvicorn

    uvicorn.run(create_app(index_path, **kwargs), host=host, port=port, log_level="warning")
