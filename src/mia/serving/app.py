"""``mia serve``: a search page and a JSON API over a gallery index (FastAPI).

Routes:
    GET  /                      the search page (self-contained HTML, no CDN)
    GET  /api/search?q=&top=    ranked, explained results (same JSON as ``mia search``)
    POST /api/search            {"query": "...", "top": 10}
    GET  /api/health            {"status": "ok", "gallery": N, ...}; 503 when the vector
                                database does not answer
    GET  /image/{i}             the image at position i of the current index
    GET  /gallery/{path}        a gallery image by its path in the index
    GET  /docs, /openapi.json   the OpenAPI description

The index is reloaded when ``mia index add/remove/sync`` publishes a change (checked with
one stat per request), so additions are served and removed images are not, without a
restart. Only gallery images are ever served: a path is looked up in the index's own list and
must resolve inside the image root (so ``..``, absolute paths, encoded traversal and
symlinks out of the gallery all get 404). Bad requests get 4xx with a message; an
unexpected error gets a plain 500 message, never a stack trace.
"""

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from mia.retrieval.index import GalleryIndex
from mia.retrieval.retriever import index_retriever
from mia.retrieval.search import QueryError, Searcher

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 2000
MAX_TOP = 100


class Batcher:
    """Serves concurrent requests in batches: one worker thread takes every request that
    is waiting (up to ``max_batch``) and answers them with one pass over the gallery
    (:meth:`Searcher.search_many`). Under load this multiplies throughput; a lone request
    is answered at once."""

    def __init__(self, searcher: Searcher, max_batch: int = 32):
        self.searcher, self.max_batch = searcher, max_batch
        self.requests: queue.Queue = queue.Queue()
        threading.Thread(target=self._work, daemon=True, name="mia-search").start()

    def submit(self, query: str, top: int) -> dict:
        future: Future = Future()
        self.requests.put((query, top, future))
        return future.result()

    def _work(self) -> None:
        while True:
            batch = [self.requests.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self.requests.get_nowait())
                except queue.Empty:
                    break
            try:
                top = max(top for _, top, _ in batch)
                answers = self.searcher.search_many([q for q, _, _ in batch], top_k=top)
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                answers = [exc] * len(batch)
            for (_, top, future), answer in zip(batch, answers):
                if isinstance(answer, Exception):
                    future.set_exception(answer)
                else:
                    future.set_result({**answer, "results": answer["results"][:top]})


class SearchRequest(BaseModel):
    query: str = Field(..., max_length=MAX_QUERY_CHARS,
                       description="the description, e.g. 'a woman in a red t-shirt'")
    top: int = Field(10, ge=1, le=MAX_TOP, description="number of results")


def create_app(index_path: str | Path, run: str | Path | None = None,
               candidates: int | None = None, backend: str = "auto",
               image_root: str | Path | None = None, max_batch: int = 32) -> FastAPI:
    searcher = _open_searcher(index_path, run, candidates, backend, image_root)
    current = _index_view(searcher)
    batcher = Batcher(searcher, max_batch)

    app = FastAPI(title="MIA person search",
                  description="Describe a pedestrian in words; get the gallery images of that "
                  "person, ranked by MIA (Niu et al., TIP 2020), with explanations.",
                  version="1")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):  # no stack traces to clients
        log.exception("error while serving %s", request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    _add_page_routes(app, searcher, current)
    _add_search_routes(app, batcher)
    _add_gallery_routes(app, current)
    return app


def _open_searcher(index_path: str | Path, run: str | Path | None, candidates: int | None,
                   backend: str, image_root: str | Path | None) -> Searcher:
    """The searcher of the index, its stage 1 ready before the first request."""
    index = GalleryIndex.open(index_path, image_root=image_root)
    searcher = Searcher(index, index_retriever(index, run), candidates=candidates,
                        backend=backend)
    if searcher.backend != "milvus" and (len(index) > searcher.exhaustive_up_to
                                         or candidates is not None):
        searcher.stage1  # noqa: B018 - built (or read) now, not during the first request
    return searcher


def _index_view(searcher: Searcher) -> Callable[[], tuple]:
    """The ``current()`` that the routes reading the index call."""
    cache: list = [None]  # (index, photo folder, path -> position), rebuilt after a reload

    def current() -> tuple:
        """(index, photo folder, path -> position) as of the last published change; one
        tuple, so concurrent requests never mix two versions of the index."""
        index = searcher.current_index()
        entry = cache[0]
        if entry is None or entry[0] is not index:
            entry = (index, index.image_root.resolve(),
                     {p: i for i, p in enumerate(index.images)})
            cache[0] = entry
        return entry

    return current


def _add_page_routes(app: FastAPI, searcher: Searcher, current: Callable[[], tuple]) -> None:
    """GET / (the search page) and GET /api/health."""

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return resources.files("mia.serving").joinpath("page.html").read_text("utf-8")

    @app.get("/api/health")
    def health():
        try:
            index = current()[0]
            if searcher.backend == "milvus":
                searcher.stage1.count()  # the vector database answers
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return JSONResponse({"status": "error", "detail": str(exc).splitlines()[0]},
                                status_code=503)
        return {"status": "ok", "gallery": len(index), "generation": index.generation,
                "stage1": searcher.backend}


def _add_search_routes(app: FastAPI, batcher: Batcher) -> None:
    """GET and POST /api/search, answered in batches by ``batcher``."""

    def run_search(query: str, top: int) -> dict:
        try:
            return batcher.submit(query, top)
        except QueryError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc

    @app.get("/api/search")
    def search_get(q: str = Query(..., max_length=MAX_QUERY_CHARS, description="description"),
                   top: int = Query(10, ge=1, le=MAX_TOP)) -> dict:
        return run_search(q, top)

    @app.post("/api/search")
    def search_post(body: SearchRequest) -> dict:
        return run_search(body.query, body.top)


def _add_gallery_routes(app: FastAPI, current: Callable[[], tuple]) -> None:
    """GET /image/{i} and GET /gallery/{path}: gallery images only, inside the image root."""

    def gallery_file(index, root, i: int) -> FileResponse:
        path = (root / index.images[i]).resolve()
        if not path.is_relative_to(root) or not path.is_file():  # symlinks out, deleted files
            raise HTTPException(status_code=404, detail="not a gallery image")
        return FileResponse(path)

    @app.get("/image/{i}")
    def image(i: int) -> FileResponse:
        index, root, _ = current()
        if not 0 <= i < len(index):
            raise HTTPException(status_code=404, detail="not a gallery image")
        return gallery_file(index, root, i)

    @app.get("/gallery/{path:path}")
    def gallery(path: str) -> FileResponse:
        index, root, by_path = current()
        if path not in by_path:
            raise HTTPException(status_code=404, detail="not a gallery image")
        return gallery_file(index, root, by_path[path])


def serve(index_path: str | Path, host: str = "127.0.0.1", port: int = 8000, **kwargs) -> None:
    import uvicorn

    uvicorn.run(create_app(index_path, **kwargs), host=host, port=port, log_level="warning")
