"""Who may do what on a cluster, and each refusal: a wrong or revoked token (401), a user
at the admin's routes (403), another user's job (404, as if there were none), a signed
URL used for another key or after it expired, a job that names another job's upload."""

from __future__ import annotations

import hashlib

import anyio
import httpx
import pytest

from burla.backends.memory import MemoryBlobStore, MemoryComputeProvider, MemoryStore
from burla.core import wire
from burla.core.clock import ManualClock, WallClock
from burla.core.errors import SignedUrlError
from burla.core.models import ClusterConfig, NodeType
from burla.services.cluster_keys import JobTokens, node_secret
from burla.services.main_service.app import create_app
from burla.services.main_service.jobs import job_record, run_from_record
from burla.services.main_service.service import MainService
from burla.services.main_service.users import TOKENS_PREFIX

pytestmark = pytest.mark.anyio
TOKEN = "t0ken-of-this-cluster"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
SPEC = {"n_inputs": 1, "func_cpu": 1, "func_ram": 1}


class Cluster:
    def __init__(self, service: MainService, client: httpx.AsyncClient, blob_clock: ManualClock):
        self.service = service
        self.client = client
        self.blob_clock = blob_clock

    async def user(self, name: str) -> dict[str, str]:
        """A new user and the headers of a token of theirs."""
        assert (await self.client.post("/users", json={"name": name}, headers=ADMIN)).is_success
        token = await self.client.post("/tokens", json={"user": name}, headers=ADMIN)
        assert token.status_code == 200
        return {"authorization": f"Bearer {token.json()['token']}"}

    async def submit(self, headers: dict[str, str], job_id: str) -> httpx.Response:
        return await self.client.post("/jobs", content=job_body(job_id), headers=headers)


def job_body(job_id: str, blobs: tuple[str, ...] = ()) -> bytes:
    spec = {**SPEC, "n_inputs": max(1, len(blobs))}
    frames = [({"job_id": job_id, "spec": spec}, b"function")]
    if blobs:
        frames += [({"i": n, "blob": key}, b"") for n, key in enumerate(blobs)]
    else:
        frames.append(({"i": 0}, b"input"))
    return wire.encode_many(frames)


def new_service(store: MemoryStore, blobs: MemoryBlobStore) -> MainService:
    clock = WallClock()
    return MainService(
        config=ClusterConfig(node_types=(NodeType(name="n2", cpus=2, ram_gb=8),)),
        store=store,
        blobs=blobs,
        compute=MemoryComputeProvider(clock),
        clock=clock,
        main_url="http://127.0.0.1:1",
        boot_env={},
        token=TOKEN,
    )


@pytest.fixture
async def cluster():
    blob_clock = ManualClock(1_000_000.0)
    service = new_service(MemoryStore(WallClock()), MemoryBlobStore(blob_clock))
    transport = httpx.ASGITransport(app=create_app(service, TOKEN))
    async with anyio.create_task_group() as tasks:
        await service.run(tasks)
        async with httpx.AsyncClient(transport=transport, base_url="http://main") as client:
            yield Cluster(service, client, blob_clock)
        tasks.cancel_scope.cancel()


@pytest.mark.parametrize("given", [None, "Bearer wrong", f"Bearer {TOKEN}x", TOKEN, "Bearer "])
@pytest.mark.parametrize(("method", "path"), [("GET", "/health"), ("POST", "/jobs")])
async def test_a_missing_or_wrong_token_is_refused(cluster, given, method, path):
    headers = {"authorization": given} if given is not None else {}
    answer = await cluster.client.request(method, path, headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"] == "AuthError"
    assert "a valid token is needed" in answer.json()["message"]


async def test_a_users_token_lets_them_in_as_themselves(cluster):
    alice = await cluster.user("alice")
    assert (await cluster.client.get("/health", headers=alice)).status_code == 200
    assert (await cluster.client.get("/me", headers=alice)).json() == {"user": "alice"}
    assert (await cluster.client.get("/me", headers=ADMIN)).json() == {"user": "admin"}


async def test_tokens_are_stored_only_as_their_hash(cluster):
    answer = await cluster.client.post("/users", json={"name": "alice"}, headers=ADMIN)
    assert answer.status_code == 200
    made = (await cluster.client.post("/tokens", json={"user": "alice"}, headers=ADMIN)).json()
    [doc] = await cluster.service.store.list(TOKENS_PREFIX)
    assert doc.data["hash"] == hashlib.sha256(made["token"].encode()).hexdigest()
    assert made["token"] not in repr(doc.data)
    listed = (await cluster.client.get("/tokens", headers=ADMIN)).json()["tokens"]
    assert listed == [{"id": made["id"], "user": "alice", "created_at": made["created_at"]}]


async def test_a_revoked_token_is_refused_at_once(cluster):
    alice = await cluster.user("alice")
    [token] = (await cluster.client.get("/tokens", headers=ADMIN)).json()["tokens"]
    revoked = await cluster.client.delete(f"/tokens/{token['id']}", headers=ADMIN)
    assert revoked.status_code == 200
    assert (await cluster.client.get("/health", headers=alice)).status_code == 401
    again = await cluster.client.delete(f"/tokens/{token['id']}", headers=ADMIN)
    assert again.status_code == 404


async def test_removing_a_user_revokes_their_tokens(cluster):
    alice = await cluster.user("alice")
    removed = await cluster.client.delete("/users/alice", headers=ADMIN)
    assert removed.status_code == 200
    assert len(removed.json()["revoked"]) == 1
    assert (await cluster.client.get("/health", headers=alice)).status_code == 401
    assert (await cluster.client.get("/users", headers=ADMIN)).json() == {"users": []}


async def test_a_user_added_again_does_not_get_the_removed_users_jobs(cluster):
    alice = await cluster.user("alice")
    assert (await cluster.submit(alice, "job-of-alice-10")).status_code == 200
    assert (await cluster.submit(alice, "job-of-alice-11")).status_code == 200
    await cluster.client.post("/jobs/job-of-alice-11/cancel", headers=alice)
    await cluster.service.job_driver.records.save(
        cluster.service.jobs.pop("job-of-alice-11")
    )  # forgotten
    token = cluster.service.job_tokens.make("job-of-alice-10", "alice")
    removed = await cluster.client.delete("/users/alice", headers=ADMIN)
    assert removed.json()["jobs_retired"] == 2
    new_alice = await cluster.user("alice")
    for job_id in ("job-of-alice-10", "job-of-alice-11"):
        assert (await cluster.client.get(f"/jobs/{job_id}", headers=new_alice)).status_code == 404
        kept = await cluster.client.get(f"/jobs/{job_id}", headers=ADMIN)
        assert kept.json()["owner"] == "alice (removed)"
    listed = await cluster.client.get("/jobs", params={"all": True}, headers=new_alice)
    assert listed.json() == {"jobs": []}
    # The running job goes on, but its code no longer acts for anyone.
    assert cluster.service.jobs["job-of-alice-10"].state.value == "running"
    in_job = {"authorization": f"Bearer {token}"}
    assert (await cluster.client.get("/me", headers=in_job)).status_code == 401


async def test_removing_a_user_cut_short_can_be_done_again(cluster):
    alice = await cluster.user("alice")
    assert (await cluster.submit(alice, "job-of-alice-12")).status_code == 200
    await cluster.service.retire_owner("alice")  # as if main_service stopped right there
    again = await cluster.client.delete("/users/alice", headers=ADMIN)
    assert again.status_code == 200
    assert again.json()["jobs_retired"] == 0
    assert (await cluster.client.delete("/users/alice", headers=ADMIN)).status_code == 404


async def test_tokens_made_before_a_restart_still_work_after_it(cluster):
    alice = await cluster.user("alice")
    # A new main_service over the same Store, as after a restart: the hashes are read back.
    restarted = new_service(cluster.service.store, MemoryBlobStore())
    transport = httpx.ASGITransport(app=create_app(restarted, TOKEN))
    async with httpx.AsyncClient(transport=transport, base_url="http://main") as client:
        assert (await client.get("/me", headers=alice)).json() == {"user": "alice"}
        assert (await client.get("/me", headers={"authorization": "Bearer no"})).status_code == 401


@pytest.mark.parametrize(
    ("name", "says"),
    [("admin", "not 'admin'"), ("Bad Name", "not 1-32"), ("alice", "already")],
)
async def test_bad_user_names_are_refused(cluster, name, says):
    await cluster.user("alice")
    answer = await cluster.client.post("/users", json={"name": name}, headers=ADMIN)
    assert answer.status_code == 400
    assert says in answer.json()["message"]


async def test_a_token_for_no_user_is_refused(cluster):
    answer = await cluster.client.post("/tokens", json={"user": "nobody"}, headers=ADMIN)
    assert answer.status_code == 404
    assert "burla users add nobody" in answer.json()["message"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/users", None),
        ("POST", "/users", {"name": "mallory"}),
        ("DELETE", "/users/alice", None),
        ("GET", "/tokens", None),
        ("POST", "/tokens", {"user": "alice"}),
        ("POST", "/restart_cluster", None),
        ("PUT", "/standby", {}),
    ],
)
async def test_a_user_may_not_do_what_only_the_admin_may(cluster, method, path, body):
    alice = await cluster.user("alice")
    answer = await cluster.client.request(method, path, json=body, headers=alice)
    assert answer.status_code == 403
    assert answer.json()["error"] == "AuthError"
    assert "only the cluster's admin" in answer.json()["message"]


async def test_another_users_job_is_as_if_there_were_none(cluster):
    alice, bob = await cluster.user("alice"), await cluster.user("bob")
    assert (await cluster.submit(alice, "job-of-alice-1")).status_code == 200
    for path in (
        "/jobs/job-of-alice-1",
        "/jobs/job-of-alice-1/events?wait=0",
        "/jobs/job-of-alice-1/results",
        "/jobs/job-of-alice-1/inputs",
        "/jobs/job-of-alice-1/logs",
        "/jobs/job-of-alice-1/errors",
        "/jobs/job-of-alice-1/function",
        "/jobs/job-of-alice-1/inputs/0",
    ):
        theirs = await cluster.client.get(path, headers=bob)
        nowhere = await cluster.client.get(path.replace("alice-1", "nobody-1"), headers=bob)
        assert theirs.status_code == nowhere.status_code == 404, path
        assert theirs.json()["error"] == "NotFoundError"
        assert theirs.text.replace("alice", "nobody") == nowhere.text
        assert (await cluster.client.get(path, headers=alice)).status_code == 200, path
        assert (await cluster.client.get(path, headers=ADMIN)).status_code == 200, path
    cancel = await cluster.client.post("/jobs/job-of-alice-1/cancel", headers=bob)
    assert cancel.status_code == 404
    assert cluster.service.jobs["job-of-alice-1"].state.value == "running"
    mine = await cluster.client.post("/jobs/job-of-alice-1/cancel", headers=alice)
    assert mine.json() == {"job_id": "job-of-alice-1", "state": "canceled"}


async def test_a_finished_job_stays_its_owners_only(cluster):
    """Once main_service forgets a job, its Store record still says whose it is."""
    alice, bob = await cluster.user("alice"), await cluster.user("bob")
    assert (await cluster.submit(alice, "job-of-alice-2")).status_code == 200
    await cluster.client.post("/jobs/job-of-alice-2/cancel", headers=alice)
    await cluster.service.job_driver.records.save(cluster.service.jobs.pop("job-of-alice-2"))
    assert (await cluster.client.get("/jobs/job-of-alice-2", headers=bob)).status_code == 404
    assert (
        await cluster.client.get("/jobs/job-of-alice-2/results", headers=bob)
    ).status_code == 404
    assert (
        await cluster.client.post("/jobs/job-of-alice-2/cancel", headers=bob)
    ).status_code == 404
    stored = await cluster.client.get("/jobs/job-of-alice-2", headers=alice)
    assert stored.json()["owner"] == "alice"
    listed = await cluster.client.get("/jobs", params={"all": True}, headers=bob)
    assert listed.json() == {"jobs": []}


async def test_each_user_lists_only_their_own_jobs(cluster):
    alice, bob = await cluster.user("alice"), await cluster.user("bob")
    await cluster.submit(alice, "job-of-alice-3")
    await cluster.submit(bob, "job-of-bob-3")

    async def listed(headers: dict[str, str]) -> set[str]:
        answer = await cluster.client.get("/jobs", params={"all": True}, headers=headers)
        return {job["job_id"] for job in answer.json()["jobs"]}

    assert await listed(alice) == {"job-of-alice-3"}
    assert await listed(bob) == {"job-of-bob-3"}
    assert await listed(ADMIN) == {"job-of-alice-3", "job-of-bob-3"}
    overview = (await cluster.client.get("/cluster", headers=bob)).json()
    assert set(overview["jobs"]) == {"job-of-bob-3"}
    assert "job-of-alice-3" not in str(overview)


async def test_an_upload_url_is_for_its_own_key_and_job_only(cluster):
    alice, bob = await cluster.user("alice"), await cluster.user("bob")
    asked = {"count": 2, "job_id": "job-of-alice-4"}
    uploads = (await cluster.client.post("/uploads", json=asked, headers=alice)).json()
    assert uploads["keys"] == ["uploads/alice/job-of-alice-4/0", "uploads/alice/job-of-alice-4/1"]
    first, second = uploads["urls"]
    blobs = cluster.service.blobs
    await blobs.put_signed(first, b"big input")
    # The same signature on another key (another of this job's, or anyone else's) is refused.
    for other in ("uploads/alice/job-of-alice-4/1", "uploads/bob/job-of-bob-4/0"):
        forged = first.replace("uploads/alice/job-of-alice-4/0", other)
        with pytest.raises(SignedUrlError, match="does not match its signature"):
            await blobs.put_signed(forged, b"x")
    with pytest.raises(SignedUrlError, match="allows PUT, not GET"):
        await blobs.get_signed(first)
    # A job may refer only to its own uploads: bob cannot run alice's input as his.
    stolen = job_body("job-of-bob-4", blobs=(uploads["keys"][0],))
    answer = await cluster.client.post("/jobs", content=stolen, headers=bob)
    assert answer.status_code == 400
    assert "only to blobs uploaded for it" in answer.json()["message"]
    # Nor can alice's other job.
    other_job = job_body("job-of-alice-5", blobs=(uploads["keys"][0],))
    assert (await cluster.client.post("/jobs", content=other_job, headers=alice)).status_code == 400
    own = job_body("job-of-alice-4", blobs=(uploads["keys"][0],))
    assert (await cluster.client.post("/jobs", content=own, headers=alice)).status_code == 200
    # An upload URL is refused once it expired (they last an hour).
    cluster.blob_clock.advance(3601)
    with pytest.raises(SignedUrlError, match="expired"):
        await blobs.put_signed(second, b"late")


async def test_a_get_url_reads_its_own_key_only_and_expires(cluster):
    """What a node hands a worker for a big input."""
    blobs = cluster.service.blobs
    await blobs.put("uploads/alice/job-of-alice-6/0", b"alice's input")
    await blobs.put("uploads/bob/job-of-bob-6/0", b"bob's input")
    url = await blobs.signed_url("uploads/alice/job-of-alice-6/0", method="GET", expires_s=60)
    assert await blobs.get_signed(url) == b"alice's input"
    forged = url.replace("alice/job-of-alice-6", "bob/job-of-bob-6")
    with pytest.raises(SignedUrlError, match="does not match its signature"):
        await blobs.get_signed(forged)
    with pytest.raises(SignedUrlError, match="allows GET, not PUT"):
        await blobs.put_signed(url, b"overwritten")
    cluster.blob_clock.advance(61)
    with pytest.raises(SignedUrlError, match="expired"):
        await blobs.get_signed(url)


async def test_an_upload_needs_a_job_id(cluster):
    bad = await cluster.client.post("/uploads", json={"count": 1, "job_id": "../x"}, headers=ADMIN)
    assert bad.status_code == 400
    assert "is not 8-64" in bad.json()["message"]


async def test_a_job_may_use_only_its_users_own_source_archives(cluster):
    alice, bob = await cluster.user("alice"), await cluster.user("bob")
    uploads = (await cluster.client.post("/uploads", json={"count": 1}, headers=alice)).json()
    [key] = uploads["keys"]
    assert key.startswith("uploads/alice/_")  # under no job's prefix: "_" is in no job id
    spec = {**SPEC, "sources": {"mypackage": key}}
    frames = [({"job_id": "job-of-bob-7", "spec": spec}, b"function"), ({"i": 0}, b"input")]
    answer = await cluster.client.post("/jobs", content=wire.encode_many(frames), headers=bob)
    assert answer.status_code == 400
    assert "only to blobs uploaded for it" in answer.json()["message"]


async def test_a_job_taken_over_after_a_restart_keeps_its_owner(cluster):
    alice = await cluster.user("alice")
    assert (await cluster.submit(alice, "job-of-alice-8")).status_code == 200
    record = job_record(cluster.service.jobs["job-of-alice-8"], 0.0)
    assert record["owner"] == "alice"
    assert run_from_record(record, None, WallClock(), validate=False).owner == "alice"


async def test_a_jobs_uploads_asked_for_in_pieces_get_keys_of_their_own(cluster):
    asked = {"count": 2, "job_id": "job-of-admin-9"}
    first = await cluster.client.post("/uploads", json=asked, headers=ADMIN)
    then = await cluster.client.post("/uploads", json={**asked, "first": 2}, headers=ADMIN)
    keys = first.json()["keys"] + then.json()["keys"]
    assert keys == [f"uploads/admin/job-of-admin-9/{n}" for n in range(4)]


async def test_only_the_clusters_nodes_may_say_they_booted(cluster):
    booted = "/nodes/node-9/booted", {"address": "127.0.0.1:1"}
    alice = await cluster.user("alice")
    refused = await cluster.client.post(booted[0], json=booted[1], headers=alice)
    assert refused.status_code == 403
    assert "only the cluster's own nodes" in refused.json()["message"]
    node = {"authorization": f"Bearer {node_secret(TOKEN)}"}
    let_in = await cluster.client.post(booted[0], json=booted[1], headers=node)
    assert let_in.status_code == 404  # past the token check: no such node was started
    assert "main_service started no node node-9" in let_in.json()["message"]


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/health"), ("GET", "/jobs"), ("GET", "/users")]
)
async def test_the_node_secret_opens_no_route_but_the_nodes_own(cluster, method, path):
    node = {"authorization": f"Bearer {node_secret(TOKEN)}"}
    assert (await cluster.client.request(method, path, headers=node)).status_code == 401


async def test_a_job_token_acts_as_the_jobs_owner_while_the_job_runs(cluster):
    alice, bob = await cluster.user("alice"), await cluster.user("bob")
    assert (await cluster.submit(alice, "job-of-alice-7")).status_code == 200
    assert (await cluster.submit(bob, "job-of-bob-7")).status_code == 200
    token = cluster.service.job_tokens.make("job-of-alice-7", "alice")
    in_job = {"authorization": f"Bearer {token}"}
    assert (await cluster.client.get("/me", headers=in_job)).json() == {"user": "alice"}
    assert (await cluster.submit(in_job, "job-nested-in-7")).status_code == 200
    assert cluster.service.jobs["job-nested-in-7"].owner == "alice"
    assert (await cluster.client.get("/jobs/job-nested-in-7", headers=alice)).status_code == 200
    assert (await cluster.client.get("/jobs/job-of-bob-7", headers=in_job)).status_code == 404
    refused = await cluster.client.get("/users", headers=in_job)
    assert refused.status_code == 403
    assert "a job's code (job-of-alice-7)" in refused.json()["message"]
    await cluster.client.post("/jobs/job-of-alice-7/cancel", headers=alice)
    # The job is over: so is its token.
    assert (await cluster.client.get("/me", headers=in_job)).status_code == 401


async def test_an_admins_job_token_may_not_do_what_only_the_admin_may(cluster):
    assert (await cluster.submit(ADMIN, "job-of-admin-8")).status_code == 200
    token = cluster.service.job_tokens.make("job-of-admin-8", "admin")
    in_job = {"authorization": f"Bearer {token}"}
    assert (await cluster.client.get("/me", headers=in_job)).json() == {"user": "admin"}
    for method, path in (("GET", "/users"), ("POST", "/restart_cluster"), ("GET", "/tokens")):
        assert (await cluster.client.request(method, path, headers=in_job)).status_code == 403


async def test_a_forged_or_borrowed_job_token_is_refused(cluster):
    await cluster.user("alice")
    await cluster.user("bob")
    assert (await cluster.submit(ADMIN, "job-of-admin-9")).status_code == 200
    real = cluster.service.job_tokens.make("job-of-admin-9", "admin")
    other_cluster = JobTokens("another-clusters-token").make("job-of-admin-9", "admin")
    for token in (
        real[:-1] + ("0" if real[-1] != "0" else "1"),  # one character changed
        cluster.service.job_tokens.make("job-of-admin-9", "bob"),  # made for another owner
        cluster.service.job_tokens.make("job-of-nobody-9", "admin"),  # for no running job
        other_cluster,
        "job.job-of-admin-9",
        "job.",
    ):
        answer = await cluster.client.get("/me", headers={"authorization": f"Bearer {token}"})
        assert answer.status_code == 401, token
    assert (await cluster.client.get("/me", headers={"authorization": f"Bearer {real}"})).is_success
