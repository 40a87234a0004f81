from ninja import Router, Schema

router = Router(tags=["Workspace"])


class WorkspaceOut(Schema):
    name: str
    slug: str
    time_zone: str


@router.get("/workspace", response=WorkspaceOut, summary="The API key's workspace")
def workspace_detail(request):
    return request.workspace
