"""The HTTP API: search, bad requests, and that only gallery images are ever served."""

import shutil

import pytest

from mia.cli.main import main

fastapi = pytest.importorskip("fastapi", reason="the serve extra is part of make test")
from fastapi.testclient import TestClient  # noqa: E402

from mia.serving.app import create_app  # noqa: E402


@pytest.fixture(scope="module")
def folder_index(trained_run, synth_dir, tmp_path_factory):
    """An index built from an image folder that holds a symlink pointing outside it."""
    base = tmp_path_factory.mktemp("folder")
    gallery = base / "gallery"
    sources = sorted((synth_dir / "imgs").rglob("*.jpg"))[:6]
    for i, src in enumerate(sources):
        (gallery / f"cam{i % 2}").mkdir(parents=True, exist_ok=True)
        shutil.copy(src, gallery / f"cam{i % 2}" / src.name)
    secret = base / "secret.jpg"
    shutil.copy(sources[0], secret)
    (gallery / "evil.jpg").symlink_to(secret)
    out = base / "index"
    assert main(["index", "build", "--run", str(trained_run[0]), "--images", str(gallery),
                 "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def client(folder_index):
    return TestClient(create_app(folder_index), raise_server_exceptions=False)


def test_search_get_and_post(client):
    got = client.get("/api/search", params={"q": "a man in a black jacket", "top": 3})
    assert got.status_code == 200
    body = got.json()
    assert len(body["results"]) == 3 and body["phrases"] == ["a man", "a black jacket"]
    posted = client.post("/api/search", json={"query": "a man in a black jacket", "top": 3})
    assert posted.json()["results"] == body["results"]
    assert client.get("/api/health").json() == {"status": "ok", "gallery": 7, "generation": 0,
                                                "stage1": "torch"}


def test_page_and_openapi(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="q"' in page.text
    assert "http" not in page.text.split("<script>")[1]  # no CDN or external resource
    spec = client.get("/openapi.json").json()
    assert {"/api/search", "/api/health", "/image/{i}"} <= set(spec["paths"])


@pytest.mark.parametrize("request_kwargs, status, message", [
    ({"method": "GET", "url": "/api/search", "params": {"q": "   "}}, 422, "query is empty"),
    ({"method": "GET", "url": "/api/search", "params": {"q": "x" * 2001}}, 422, "at most 2000"),
    ({"method": "GET", "url": "/api/search", "params": {"q": "a man", "top": 0}}, 422,
     "greater than or equal to 1"),
    ({"method": "GET", "url": "/api/search"}, 422, "Field required"),
    ({"method": "POST", "url": "/api/search", "content": b"{bad json",
      "headers": {"Content-Type": "application/json"}}, 422, "JSON"),
    ({"method": "POST", "url": "/api/search", "json": {"query": 5}}, 422, "valid string"),
    ({"method": "POST", "url": "/api/search", "json": ["a man"]}, 422,
     "valid dictionary"),
])
def test_bad_requests_get_4xx_with_a_message(client, request_kwargs, status, message):
    response = client.request(**request_kwargs)
    assert response.status_code == status
    assert message in response.text
    assert "Traceback" not in response.text


@pytest.mark.parametrize("path", [
    "/gallery/../secret.jpg", "/gallery/%2e%2e/secret.jpg", "/gallery/..%2Fsecret.jpg",
    "/gallery//etc/passwd", "/gallery/%2Fetc%2Fpasswd", "/gallery/cam0/../../secret.jpg",
    "/gallery/evil.jpg", "/image/-1", "/image/999", "/image/..%2F..%2Fetc%2Fpasswd",
])
def test_only_gallery_images_are_served(client, path):
    assert client.get(path).status_code == 404


def test_symlink_out_of_the_gallery_is_refused_even_by_number(client, folder_index):
    from mia.retrieval.index import GalleryIndex

    index = GalleryIndex.open(folder_index)
    evil = index.images.index("evil.jpg")
    assert client.get(f"/image/{evil}").status_code == 404
    good = index.images.index(next(p for p in index.images if p.startswith("cam0/")))
    response = client.get(f"/image/{good}")
    assert response.status_code == 200 and response.content[:2] == b"\xff\xd8"
    assert client.get(f"/gallery/{index.images[good]}").status_code == 200


def test_unexpected_errors_are_500_without_stack_trace(folder_index, monkeypatch):
    from mia.retrieval import search

    app = create_app(folder_index)

    def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(search.Searcher, "search_many", boom)
    response = TestClient(app, raise_server_exceptions=False).get("/api/search",
                                                                  params={"q": "a man"})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}
