"""Posts, comments and reactions (docs/api.md)."""

from __future__ import annotations

import azure.functions as func

from functions.contract import DELETE_COMMENT_QUERY, DELETE_POST_QUERY, PAGE_QUERY, REACTION_QUERY, api_route
from functions.http_support import ApiRequest, no_content, ok, weigh_by_callers_followers
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.schemas.common import Page
from shared_code.schemas.moderation import moderation_reason
from shared_code.schemas.posts import (
    Bookmark,
    Comment,
    CreateComment,
    CreatePost,
    EditPost,
    Post,
    Reaction,
    SetReaction,
)
from shared_code.services import bookmarks, engagement, posts, reaction_reads, reposts

bp = func.Blueprint()


@api_route(
    bp,
    "POST",
    "posts",
    summary="Publish a post",
    request=CreatePost,
    response=Post,
    status=201,
    tag="posts",
    weigh=weigh_by_callers_followers,
)
async def create_post(api: ApiRequest) -> func.HttpResponse:
    body = api.body(CreatePost)

    async def create(uow: UnitOfWork) -> tuple[Post, str]:
        settings = api.app.settings
        post = await posts.create_post(
            uow, body, api.app.media_urls, settings.search_text_config, settings.fanout_max_followers
        )
        return post, f"posts/{post.id}"

    return await api.create("create_post", body, create)


@api_route(bp, "GET", "posts/{postId:guid}", summary="A post with its counts", response=Post, tag="posts")
async def get_post(api: ApiRequest) -> func.HttpResponse:
    post_id = api.route_id("postId")
    return ok(await api.run(lambda uow: posts.get_post(uow, post_id, api.app.media_urls)))


@api_route(
    bp,
    "PATCH",
    "posts/{postId:guid}",
    summary="Edit a post (author only)",
    request=EditPost,
    response=Post,
    tag="posts",
    weigh=weigh_by_callers_followers,
)
async def edit_post(api: ApiRequest) -> func.HttpResponse:
    post_id = api.route_id("postId")
    body = api.body(EditPost)
    return ok(
        await api.run(
            lambda uow: posts.edit_post(
                uow, post_id, body, api.app.media_urls, api.app.settings.search_text_config
            )
        )
    )


@api_route(
    bp,
    "DELETE",
    "posts/{postId:guid}",
    summary="Delete a post (the author), or remove it with a reason (a moderator)",
    status=204,
    query=DELETE_POST_QUERY,
    tag="posts",
)
async def delete_post(api: ApiRequest) -> func.HttpResponse:
    post_id = api.route_id("postId")
    reason = moderation_reason(api.req.params.get("reason"))
    await api.run(lambda uow: posts.delete_post(uow, post_id, reason))
    return no_content()


@api_route(
    bp,
    "GET",
    "users/{userId:guid}/posts",
    summary="An author's posts, newest first",
    response=Page[Post],
    query=PAGE_QUERY,
    tag="posts",
)
async def list_user_posts(api: ApiRequest) -> func.HttpResponse:
    author_id = api.route_id("userId")
    limit, cursor = api.page()
    return ok(
        await api.run(
            lambda uow: posts.list_author_posts(
                uow, api.app.cursors, api.app.media_urls, author_id, limit, cursor
            )
        )
    )


@api_route(
    bp,
    "POST",
    "posts/{postId:guid}/comments",
    summary="Comment on a post",
    request=CreateComment,
    response=Comment,
    status=201,
    tag="posts",
)
async def create_comment(api: ApiRequest) -> func.HttpResponse:
    post_id = api.route_id("postId")
    body = api.body(CreateComment)

    async def create(uow: UnitOfWork) -> tuple[Comment, str]:
        comment = await engagement.add_comment(uow, post_id, body)
        return comment, f"comments/{comment.id}"

    return await api.create(f"create_comment:{post_id}", body, create)


@api_route(
    bp,
    "GET",
    "posts/{postId:guid}/comments",
    summary="A post's comments, oldest first",
    response=Page[Comment],
    query=PAGE_QUERY,
    tag="posts",
)
async def list_comments(api: ApiRequest) -> func.HttpResponse:
    post_id = api.route_id("postId")
    limit, cursor = api.page()
    return ok(
        await api.run(lambda uow: engagement.list_comments(uow, api.app.cursors, post_id, limit, cursor))
    )


@api_route(
    bp,
    "DELETE",
    "comments/{commentId:guid}",
    summary="Delete a comment (its author, the post's author, or a moderator with a reason)",
    status=204,
    query=DELETE_COMMENT_QUERY,
    tag="posts",
)
async def delete_comment(api: ApiRequest) -> func.HttpResponse:
    comment_id = api.route_id("commentId")
    reason = moderation_reason(api.req.params.get("reason"))
    await api.run(lambda uow: engagement.delete_comment(uow, comment_id, reason))
    return no_content()


@api_route(
    bp,
    "PUT",
    "posts/{postId:guid}/reactions",
    summary="Set the caller's one reaction to a post",
    request=SetReaction,
    status=204,
    tag="posts",
)
async def set_reaction(api: ApiRequest) -> func.HttpResponse:
    post_id = api.route_id("postId")
    body = api.body(SetReaction)
    await api.run(lambda uow: engagement.set_reaction(uow, post_id, body.type))
    return no_content()


@api_route(
    bp,
    "DELETE",
    "posts/{postId:guid}/reactions",
    summary="Remove the caller's reaction",
    status=204,
    tag="posts",
)
async def remove_reaction(api: ApiRequest) -> func.HttpResponse:
    post_id = api.route_id("postId")
    await api.run(lambda uow: engagement.remove_reaction(uow, post_id))
    return no_content()


@api_route(
    bp,
    "GET",
    "posts/{postId:guid}/reactions",
    summary="Who reacted to a post, newest first",
    response=Page[Reaction],
    query=REACTION_QUERY,
    tag="posts",
)
async def list_reactions(api: ApiRequest) -> func.HttpResponse:
    post_id = api.route_id("postId")
    limit, cursor = api.page()
    reaction_type = api.req.params.get("type")
    app = api.app
    return ok(
        await reaction_reads.list_reactions(
            api.run,
            app.request_cosmos_db,
            api.cosmos_budget(),
            app.cursors,
            post_id,
            reaction_type,
            limit,
            cursor,
        )
    )


@api_route(
    bp,
    "PUT",
    "posts/{postId:guid}/repost",
    summary="Repost a post to the caller's followers (again: nothing changes)",
    status=204,
    tag="posts",
    weigh=weigh_by_callers_followers,
)
async def repost(api: ApiRequest) -> func.HttpResponse:
    post_id = api.route_id("postId")
    await api.run(lambda uow: reposts.repost(uow, post_id, api.app.settings.fanout_max_followers))
    return no_content()


@api_route(
    bp,
    "DELETE",
    "posts/{postId:guid}/repost",
    summary="Undo the caller's repost",
    status=204,
    tag="posts",
    weigh=weigh_by_callers_followers,
)
async def unrepost(api: ApiRequest) -> func.HttpResponse:
    post_id = api.route_id("postId")
    await api.run(lambda uow: reposts.unrepost(uow, post_id))
    return no_content()


@api_route(
    bp,
    "PUT",
    "posts/{postId:guid}/bookmark",
    summary="Bookmark a post (private to the caller; again: nothing changes)",
    status=204,
    tag="posts",
)
async def bookmark(api: ApiRequest) -> func.HttpResponse:
    post_id = api.route_id("postId")
    await api.run(lambda uow: bookmarks.bookmark(uow, post_id))
    return no_content()


@api_route(
    bp,
    "DELETE",
    "posts/{postId:guid}/bookmark",
    summary="Remove the caller's bookmark of a post",
    status=204,
    tag="posts",
)
async def unbookmark(api: ApiRequest) -> func.HttpResponse:
    post_id = api.route_id("postId")
    await api.run(lambda uow: bookmarks.unbookmark(uow, post_id))
    return no_content()


@api_route(
    bp,
    "GET",
    "bookmarks",
    summary="The caller's bookmarks, newest first (posts they may no longer see are left out)",
    response=Page[Bookmark],
    query=PAGE_QUERY,
    tag="posts",
)
async def list_bookmarks(api: ApiRequest) -> func.HttpResponse:
    limit, cursor = api.page()
    return ok(
        await api.run(
            lambda uow: bookmarks.list_bookmarks(uow, api.app.cursors, api.app.media_urls, limit, cursor)
        )
    )
