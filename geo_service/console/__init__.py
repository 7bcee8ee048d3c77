"""The command-centre console (``/console``): the wall screen's page assembly and its one
Chinese/English dictionary (:mod:`geo_service.console.i18n`); its JSON calls live in
``geo_service.api.routes.console``, their SQL in ``geo_service.store.console``."""
