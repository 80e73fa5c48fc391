"""Posts, comments and reactions (API.md)."""

from __future__ import annotations

import azure.functions as func

from functions.http_support import ApiRequest, endpoint, no_content, ok
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.schemas import Comment, CreateComment, CreatePost, EditPost, Post, SetReaction
from shared_code.services import engagement, posts, projection_reads

bp = func.Blueprint()


@bp.route(route="posts", methods=["POST"])
@endpoint()
async def create_post(api: ApiRequest) -> func.HttpResponse:
    body = api.body(CreatePost)

    async def create(uow: UnitOfWork) -> tuple[Post, str]:
        post = await posts.create_post(uow, body, api.app.media_urls)
        return post, f"posts/{post.id}"

    return await api.create("create_post", body, create)


@bp.route(route="posts/{postId:guid}", methods=["GET"])
@endpoint()
async def get_post(api: ApiRequest) -> func.HttpResponse:
    post_id = api.route_id("postId")
    return ok(await api.run(lambda uow: posts.get_post(uow, post_id, api.app.media_urls)))


@bp.route(route="posts/{postId:guid}", methods=["PATCH"])
@endpoint()
async def edit_post(api: ApiRequest) -> func.HttpResponse:
    post_id = api.route_id("postId")
    body = api.body(EditPost)
    return ok(await api.run(lambda uow: posts.edit_post(uow, post_id, body, api.app.media_urls)))


@bp.route(route="posts/{postId:guid}", methods=["DELETE"])
@endpoint()
async def delete_post(api: ApiRequest) -> func.HttpResponse:
    post_id = api.route_id("postId")
    await api.run(lambda uow: posts.delete_post(uow, post_id))
    return no_content()


@bp.route(route="users/{userId:guid}/posts", methods=["GET"])
@endpoint()
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


@bp.route(route="posts/{postId:guid}/comments", methods=["POST"])
@endpoint()
async def create_comment(api: ApiRequest) -> func.HttpResponse:
    post_id = api.route_id("postId")
    body = api.body(CreateComment)

    async def create(uow: UnitOfWork) -> tuple[Comment, str]:
        comment = await engagement.add_comment(uow, post_id, body)
        return comment, f"comments/{comment.id}"

    return await api.create(f"create_comment:{post_id}", body, create)


@bp.route(route="posts/{postId:guid}/comments", methods=["GET"])
@endpoint()
async def list_comments(api: ApiRequest) -> func.HttpResponse:
    post_id = api.route_id("postId")
    limit, cursor = api.page()
    return ok(
        await api.run(lambda uow: engagement.list_comments(uow, api.app.cursors, post_id, limit, cursor))
    )


@bp.route(route="comments/{commentId:guid}", methods=["DELETE"])
@endpoint()
async def delete_comment(api: ApiRequest) -> func.HttpResponse:
    comment_id = api.route_id("commentId")
    await api.run(lambda uow: engagement.delete_comment(uow, comment_id))
    return no_content()


@bp.route(route="posts/{postId:guid}/reactions", methods=["PUT"])
@endpoint()
async def set_reaction(api: ApiRequest) -> func.HttpResponse:
    post_id = api.route_id("postId")
    body = api.body(SetReaction)
    await api.run(lambda uow: engagement.set_reaction(uow, post_id, body.type))
    return no_content()


@bp.route(route="posts/{postId:guid}/reactions", methods=["DELETE"])
@endpoint()
async def remove_reaction(api: ApiRequest) -> func.HttpResponse:
    post_id = api.route_id("postId")
    await api.run(lambda uow: engagement.remove_reaction(uow, post_id))
    return no_content()


@bp.route(route="posts/{postId:guid}/reactions", methods=["GET"])
@endpoint()
async def list_reactions(api: ApiRequest) -> func.HttpResponse:
    post_id = api.route_id("postId")
    limit, cursor = api.page()
    reaction_type = api.req.params.get("type")
    app = api.app
    return ok(
        await api.run(
            lambda uow: projection_reads.list_reactions(
                uow, app.cosmos_db, app.cursors, post_id, reaction_type, limit, cursor
            )
        )
    )
