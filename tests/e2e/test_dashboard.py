"""The dashboard in a real browser (headless Chromium) while a job runs on the local
cluster: sign in, see the job's progress advance, its printed lines and its error appear;
a user signs in with their own token and sees only their own jobs. Screenshots are kept
in results/artifacts/."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from burla import remote_parallel_map
from burla.client import local
from tests.components.chromium import ARTIFACTS

pytestmark = pytest.mark.integration
TIMEOUT_MS = 60_000


def count_slowly(x: int) -> int:
    print(f"working on input {x}")
    time.sleep(0.8)
    if x == 5:
        raise ValueError(f"input {x} is unlucky")
    return x


def wait_and_print(x: int) -> int:
    print(f"started input {x}")
    time.sleep(60)
    return x


def done_count(page) -> int:
    match = re.match(r"(\d+) / \d+", page.locator("#job-count").inner_text())
    assert match is not None
    return int(match[1])


def test_sign_in_with_the_form(cluster: local.ClusterInfo, browser_page):
    page = browser_page
    page.goto(f"{cluster.url}/dashboard")
    page.locator("#login").wait_for(state="visible", timeout=TIMEOUT_MS)
    page.fill("input[name=token]", "not-the-token")
    page.click("#login button")
    page.locator("#denied").wait_for(state="visible", timeout=TIMEOUT_MS)
    page.fill("input[name=token]", cluster.token)
    page.click("#login button")
    page.locator("#overview").wait_for(state="visible", timeout=TIMEOUT_MS)
    assert page.locator("#connection").inner_text() in ("live", "connecting…")
    assert cluster.token not in page.url


def test_a_running_job_live(cluster: local.ClusterInfo, browser_page):
    page = browser_page
    n_inputs = 24
    job_id = remote_parallel_map(count_slowly, range(n_inputs), detach=True)
    try:
        page.goto(f"{cluster.url}/dashboard?token={cluster.token}")
        assert page.url == f"{cluster.url}/dashboard"  # the token went into a cookie
        row = page.locator(f'#jobs tr[data-job="{job_id}"]')
        row.wait_for(timeout=TIMEOUT_MS)
        page.wait_for_function(
            "() => Number(document.getElementById('cpus-busy').textContent) > 0",
            timeout=TIMEOUT_MS,
        )
        # The job's row advances by itself: its first inputs come in while we watch.
        page.wait_for_function(
            f"""() => parseInt(document.querySelector('tr[data-job="{job_id}"] .count')
                .textContent) > 0""",
            timeout=TIMEOUT_MS,
        )
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-overview.png"), full_page=True)

        row.locator("a").click()
        page.locator("#job").wait_for(state="visible", timeout=TIMEOUT_MS)
        page.locator("#logs .line", has_text="working on input").first.wait_for(timeout=TIMEOUT_MS)
        first = done_count(page)
        assert first < n_inputs
        page.wait_for_function(
            f"() => parseInt(document.getElementById('job-count').textContent) > {first}",
            timeout=TIMEOUT_MS,
        )
        assert done_count(page) > first  # progress advanced while we watched
        error = page.locator("#logs .line.error")
        error.wait_for(timeout=TIMEOUT_MS)
        assert "ValueError: input 5 is unlucky" in error.inner_text()
        assert "Traceback" in error.inner_text()
        assert error.get_attribute("data-input") == "5"
        page.screenshot(path=str(ARTIFACTS / "dashboard-job.png"), full_page=True)
        assert page.locator("#cells .cell").count() == n_inputs
        assert page.locator("#cells .cell.f").count() == 1

        page.wait_for_function(
            "() => document.getElementById('job-state').textContent === 'failed'",
            timeout=TIMEOUT_MS,
        )
        assert done_count(page) == n_inputs
        lines = page.locator("#logs .line", has_text="working on input").all_inner_texts()
        assert sorted(int(line.rsplit(" ", 1)[1]) for line in lines) == list(range(n_inputs))
    finally:
        headers = {"authorization": f"Bearer {cluster.token}"}
        httpx.post(f"{cluster.url}/jobs/{job_id}/cancel", headers=headers, timeout=10)


def test_a_user_sees_only_their_own_jobs(cluster: local.ClusterInfo, browser_page, monkeypatch):
    page = browser_page
    admin = {"authorization": f"Bearer {cluster.token}"}
    admins_job = remote_parallel_map(wait_and_print, [0], detach=True, spinner=False)
    users_job = None
    try:
        made = httpx.post(f"{cluster.url}/users", json={"name": "carol"}, headers=admin)
        assert made.status_code == 200, made.text
        token = httpx.post(f"{cluster.url}/tokens", json={"user": "carol"}, headers=admin)
        carol = token.json()["token"]
        monkeypatch.setenv("BURLA_BACKEND", "gcp")  # a user's client, at the cluster's address
        monkeypatch.setenv("BURLA_MAIN_URL", cluster.url)
        monkeypatch.setenv("BURLA_TOKEN", carol)
        users_job = remote_parallel_map(wait_and_print, [1], detach=True, spinner=False)

        page.goto(f"{cluster.url}/dashboard")
        page.fill("input[name=token]", carol)
        page.click("#login button")
        page.locator(f'#jobs tr[data-job="{users_job}"]').wait_for(timeout=TIMEOUT_MS)
        assert page.locator("#who").inner_text() == "signed in as carol"
        assert page.locator("#jobs-title").inner_text() == "Your jobs"
        assert not page.locator("#jobs th", has_text="owner").is_visible()  # the admin's column
        # The admin's job holds a node: carol sees the node busy, but not with what.
        page.locator("#nodes td", has_text="(another user's)").first.wait_for(timeout=TIMEOUT_MS)
        assert page.locator("#jobs tbody tr").count() == 1
        assert admins_job not in page.content()  # not in the jobs, nor on a node's row
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-user.png"), full_page=True)

        # Another user's job, by its address, is as if there were none.
        page.goto(f"{cluster.url}/dashboard#/jobs/{admins_job}")
        page.locator("#job-error", has_text="there is no job").wait_for(timeout=TIMEOUT_MS)

        # Their own job: its output, and a Cancel button that works.
        page.goto(f"{cluster.url}/dashboard#/jobs/{users_job}")
        page.locator("#logs .line", has_text="started input 1").wait_for(timeout=TIMEOUT_MS)
        page.click("#cancel")
        page.wait_for_function(
            "() => document.getElementById('job-state').textContent === 'canceled'",
            timeout=TIMEOUT_MS,
        )
        shown = httpx.get(f"{cluster.url}/jobs/{admins_job}", headers=admin).json()
        assert shown["state"] == "running"  # the admin's job ran on, untouched
    finally:
        for job_id in (admins_job, users_job):
            if job_id is not None:
                httpx.post(f"{cluster.url}/jobs/{job_id}/cancel", headers=admin, timeout=10)
        httpx.delete(f"{cluster.url}/users/carol", headers=admin, timeout=10)
