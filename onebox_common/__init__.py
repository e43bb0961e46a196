"""What more than one part of onebox needs, and none of them owns: the front end, the workers and the gallery
each import from here, and this package imports none of them (nor aiohttp, grpc or a model library)."""
