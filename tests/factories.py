import factory

from apps.accounts.models import Membership, User
from apps.accounts.services import api_key_create
from apps.core.tenancy import Role
from apps.merchants.models import Isv, Merchant


class IsvFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Isv

    name = factory.Sequence(lambda n: f"ISV {n}")


class MerchantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Merchant

    isv = factory.SubFactory(IsvFactory)
    name = factory.Sequence(lambda n: f"Merchant {n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("correct horse battery staple")
    is_staff = True


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    isv = factory.SubFactory(IsvFactory)
    merchant = None
    role = Role.OWNER


def issue_key(*, isv, merchant=None, name="test key", **kwargs) -> str:
    return api_key_create(isv=isv, merchant=merchant, name=name, **kwargs).secret
