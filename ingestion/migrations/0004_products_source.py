"""Ship the `products` HTTP source: the fake e-commerce API of the seed (003), disabled.

Enable it in the admin once its credentials are in the environment
(PRODUCTS_API_USERNAME, PRODUCTS_API_PASSWORD) and the network reaches it.
"""

from django.db import migrations

PRODUCTS = {
    "name": "products",
    "base_url": "https://api.escuelajs.co/api/v1",
    "path": "/products",
    "pagination": "offset",
    "page_size": 50,
    "items_key": "",
    "token_url": "/auth/login",
    "refresh_url": "/auth/refresh-token",
    "username_field": "email",
    "refresh_field": "refreshToken",
    "username": "env:PRODUCTS_API_USERNAME",
    "password": "env:PRODUCTS_API_PASSWORD",
    "field_map": {
        "product_id": "id",
        "title": "title",
        "category": "category.name",
        "description": "description",
        "price_usd": "price",
    },
    "enabled": False,
}


def ship(apps, schema_editor):
    HttpSource = apps.get_model("ingestion", "HttpSource")
    HttpSource.objects.get_or_create(name="products", defaults=PRODUCTS)


def unship(apps, schema_editor):
    apps.get_model("ingestion", "HttpSource").objects.filter(name="products").delete()


class Migration(migrations.Migration):
    dependencies = [("ingestion", "0003_http_sources_products")]

    operations = [migrations.RunPython(ship, unship)]
