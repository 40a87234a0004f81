from datetime import datetime

from ninja import Query, Router, Schema
from ninja.pagination import paginate

from config.api import CursorPagination
from people.selectors import get_person_or_404, person_list

router = Router(tags=["People"])


class PersonOut(Schema):
    id: int
    external_id: str
    email: str
    phone: str
    first_name: str
    last_name: str
    gender: str
    country: str
    city: str
    address: str
    company: str
    attributes: dict
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_company(obj):
        return obj.company.name if obj.company_id else ""


class PersonFilters(Schema):
    q: str | None = None


@router.get("/people", response=list[PersonOut], summary="List people")
@paginate(CursorPagination)
def people_list(request, filters: Query[PersonFilters]):
    return person_list(workspace=request.workspace, q=filters.q)


@router.get("/people/{external_id}", response=PersonOut, summary="One person")
def person_detail(request, external_id: str):
    return get_person_or_404(workspace=request.workspace, external_id=external_id)
