"""A first pass through the write path: onboard, follow, post, react, comment."""

from tests.support.api import ApiClient


async def test_onboard_follow_post_react_comment(api: ApiClient) -> None:
    r = await api.call(
        "POST", "/api/users", subject="alice", json_body={"username": "alice", "displayName": "Alice"}
    )
    assert r.status == 201, r
    alice = r.json
    assert r.headers["location"] == "/api/users/me"
    r = await api.call(
        "POST", "/api/users", subject="bob", json_body={"username": "bob", "displayName": "Bob"}
    )
    bob = r.json
    assert (await api.call("PUT", f"/api/users/{alice['id']}/follow", subject="bob")).status == 204
    r = await api.call("POST", "/api/posts", subject="alice", json_body={"content": "hello"})
    assert r.status == 201, r
    post = r.json
    assert (
        await api.call("PUT", f"/api/posts/{post['id']}/reactions", subject="bob", json_body={"type": "love"})
    ).status == 204
    r = await api.call(
        "POST", f"/api/posts/{post['id']}/comments", subject="bob", json_body={"content": "hi!"}
    )
    assert r.status == 201, r
    r = await api.call("GET", f"/api/posts/{post['id']}", subject="bob")
    assert r.status == 200, r
    assert r.json["counts"]["love"] == 1
    assert r.json["commentCount"] == 1
    r = await api.call("GET", f"/api/users/{alice['id']}/followers", subject="alice")
    assert [p["userId"] for p in r.json["items"]] == [bob["id"]]
